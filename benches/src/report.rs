//! The report of a run: a human table and JSON.

use serde::{Deserialize, Serialize};

use crate::publisher::PublishStats;
use crate::run::RunConfig;

/// p50, p99 and max of a set of samples (milliseconds), nearest-rank.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(samples: impl Iterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = samples.collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Percentiles {
            count: v.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublisherReport {
    pub tags_sent: u64,
    pub bytes_sent: u64,
    pub loops: u32,
    pub max_late_ms: f64,
}

impl From<PublishStats> for PublisherReport {
    fn from(p: PublishStats) -> Self {
        PublisherReport {
            tags_sent: p.tags_sent,
            bytes_sent: p.bytes_sent,
            loops: p.loops,
            max_late_ms: p.max_late.as_secs_f64() * 1e3,
        }
    }
}

/// One server thread's CPU over the steady window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerCpu {
    pub name: String,
    /// % of one core.
    pub cpu_pct: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub url: String,
    pub players: usize,
    pub threads: usize,
    pub ramp_per_s: f64,
    pub duration_s: f64,
    pub connected: usize,
    /// Players that got NetStream.Play.Start (or media).
    pub playing: usize,
    pub got_video: usize,
    pub failed: usize,
    pub all_joined_after_s: Option<f64>,
    pub steady_secs: Option<f64>,
    /// Over the steady window.
    pub delivered_mbps: Option<f64>,
    pub first_video_ms: Option<Percentiles>,
    pub play_to_first_video_ms: Option<Percentiles>,
    pub first_media_ms: Option<Percentiles>,
    pub stalls: u64,
    pub players_with_stalls: usize,
    pub max_gap_ms: f64,
    #[serde(default)]
    pub video_stalls: u64,
    #[serde(default)]
    pub players_with_video_stalls: usize,
    #[serde(default)]
    pub max_video_gap_ms: f64,
    /// Video pictures a second per player, from its first picture to the end (the stream's
    /// frame rate when nothing is dropped).
    #[serde(default)]
    pub video_fps: Option<f64>,
    /// The fewest video pictures any playing player received (a VOD run: every viewer got
    /// the file at real-time pace when this is the frame rate times the run plus the lead).
    #[serde(default)]
    pub video_pictures_min: Option<u64>,
    #[serde(default)]
    pub audio_per_s: Option<f64>,
    /// Steady-window delivery divided by the players playing.
    pub mbps_per_viewer: Option<f64>,
    pub server_pid: Option<u32>,
    pub server_cpu_pct: Option<f64>,
    pub gbps_per_core: Option<f64>,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_steady_kib: Option<u64>,
    pub kib_per_viewer: Option<f64>,
    /// Each stratad worker thread's CPU over the steady window (% of one core), by thread
    /// name (`strata-w0`, `strata-w1`, ...), from /proc/PID/task. Empty without
    /// `--server-pid` or for servers without `strata-w` threads (nginx): other threads are
    /// not reported.
    #[serde(default)]
    pub server_workers_cpu_pct: Vec<WorkerCpu>,
    /// TcpExt ListenOverflows (accept queue full) and ListenDrops (all drops at listen
    /// sockets) counted from before the players connected to the end of the run. The kernel
    /// counts them per network namespace, not per socket: anything else listening in the
    /// server's namespace (read from /proc/PID/net/netstat, or ours without `--server-pid`)
    /// counts too.
    #[serde(default)]
    pub listen_overflows: Option<u64>,
    #[serde(default)]
    pub listen_drops: Option<u64>,
    /// The load tool's own CPU over the steady window (% of one core).
    pub load_cpu_pct: Option<f64>,
    /// RTMFP players: datagrams the kernel dropped at their sockets over the whole run (the
    /// tool read too late). The server repairs them as losses, so stalls in a run with
    /// drops may be the tool's.
    #[serde(default)]
    pub player_socket_drops: Option<u64>,
    pub publisher: Option<PublisherReport>,
    pub publisher_error: Option<String>,
    pub errors: Vec<String>,
    /// Players not playing at the end, by the phase they were stuck in.
    #[serde(default)]
    pub not_playing_by_phase: std::collections::BTreeMap<String, usize>,
}

impl Report {
    pub fn new(cfg: &RunConfig) -> Self {
        Report {
            url: format!(
                "rtmp://{}:{}/{}/{}",
                cfg.load.url.host, cfg.load.url.port, cfg.load.url.app, cfg.load.url.stream
            ),
            players: cfg.load.players,
            threads: cfg.load.threads,
            ramp_per_s: cfg.load.ramp,
            duration_s: cfg.duration.as_secs_f64(),
            connected: 0,
            playing: 0,
            got_video: 0,
            failed: 0,
            all_joined_after_s: None,
            steady_secs: None,
            delivered_mbps: None,
            first_video_ms: None,
            play_to_first_video_ms: None,
            first_media_ms: None,
            stalls: 0,
            players_with_stalls: 0,
            max_gap_ms: 0.0,
            video_stalls: 0,
            players_with_video_stalls: 0,
            max_video_gap_ms: 0.0,
            mbps_per_viewer: None,
            video_fps: None,
            video_pictures_min: None,
            audio_per_s: None,
            server_pid: cfg.server_pid,
            server_cpu_pct: None,
            gbps_per_core: None,
            server_rss_before_kib: None,
            server_rss_steady_kib: None,
            kib_per_viewer: None,
            server_workers_cpu_pct: Vec::new(),
            listen_overflows: None,
            listen_drops: None,
            load_cpu_pct: None,
            player_socket_drops: None,
            publisher: None,
            publisher_error: None,
            errors: Vec::new(),
            not_playing_by_phase: Default::default(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str, prec: usize| match v {
            Some(v) => format!("{v:.prec$}{unit}"),
            None => "-".into(),
        };
        let pct = |p: &Option<Percentiles>| match p {
            Some(p) => format!(
                "p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms  (n={})",
                p.p50, p.p99, p.max, p.count
            ),
            None => "-".into(),
        };
        let mut rows = vec![
            ("url", self.url.clone()),
            (
                "players",
                format!(
                    "{} on {} thread(s), ramp {}",
                    self.players,
                    self.threads,
                    if self.ramp_per_s > 0.0 {
                        format!("{}/s", self.ramp_per_s)
                    } else {
                        "all at once".into()
                    }
                ),
            ),
            (
                "connected / playing / video / failed",
                format!(
                    "{} / {} / {} / {}",
                    self.connected, self.playing, self.got_video, self.failed
                ),
            ),
            (
                "steady window",
                opt(self.steady_secs, " s", 1)
                    + &self
                        .all_joined_after_s
                        .map(|s| format!(" (all joined after {s:.1} s)"))
                        .unwrap_or_default(),
            ),
            (
                "delivered",
                match (self.delivered_mbps, self.mbps_per_viewer) {
                    (Some(t), Some(v)) => format!("{t:.1} Mbit/s ({v:.3} Mbit/s per viewer)"),
                    _ => "-".into(),
                },
            ),
            (
                "received per player",
                format!(
                    "{} video pictures/s, {} audio frames/s",
                    opt(self.video_fps, "", 1),
                    opt(self.audio_per_s, "", 1)
                ),
            ),
            ("connect -> first video", pct(&self.first_video_ms)),
            ("play -> first video", pct(&self.play_to_first_video_ms)),
            ("connect -> first media", pct(&self.first_media_ms)),
            (
                "stalls (gaps > 500 ms)",
                format!(
                    "{} in {} player(s), longest gap {:.0} ms",
                    self.stalls, self.players_with_stalls, self.max_gap_ms
                ),
            ),
            (
                "video stalls (> 500 ms)",
                format!(
                    "{} in {} player(s), longest gap {:.0} ms",
                    self.video_stalls, self.players_with_video_stalls, self.max_video_gap_ms
                ),
            ),
        ];
        if self.server_pid.is_some() {
            rows.push(("server cpu", opt(self.server_cpu_pct, " % of a core", 1)));
            rows.push(("Gbit/s per server core", opt(self.gbps_per_core, "", 2)));
            rows.push((
                "server rss before / steady",
                format!(
                    "{} / {}",
                    opt(
                        self.server_rss_before_kib.map(|k| k as f64 / 1024.0),
                        " MiB",
                        1
                    ),
                    opt(
                        self.server_rss_steady_kib.map(|k| k as f64 / 1024.0),
                        " MiB",
                        1
                    )
                ),
            ));
            rows.push(("memory per viewer", opt(self.kib_per_viewer, " KiB", 1)));
            if !self.server_workers_cpu_pct.is_empty() {
                let workers: Vec<String> = self
                    .server_workers_cpu_pct
                    .iter()
                    .map(|w| format!("{} {:.1} %", w.name, w.cpu_pct))
                    .collect();
                rows.push(("server worker cpu", workers.join(", ")));
            }
        }
        rows.push((
            "listen overflows / drops",
            match (self.listen_overflows, self.listen_drops) {
                (Some(o), Some(d)) => format!("{o} / {d} (in the server's network namespace)"),
                _ => "-".into(),
            },
        ));
        rows.push(("load tool cpu", opt(self.load_cpu_pct, " % of a core", 1)));
        if let Some(d) = self.player_socket_drops {
            rows.push(("datagrams dropped at players", d.to_string()));
        }
        if let Some(p) = &self.publisher {
            rows.push((
                "publisher",
                format!(
                    "{} tags, {:.1} MB, {} loop(s), worst lateness {:.0} ms",
                    p.tags_sent,
                    p.bytes_sent as f64 / 1e6,
                    p.loops,
                    p.max_late_ms
                ),
            ));
        }
        if let Some(e) = &self.publisher_error {
            rows.push(("publisher error", e.clone()));
        }
        for (phase, n) in &self.not_playing_by_phase {
            rows.push(("not playing", format!("{n} stuck at {phase}")));
        }
        for e in &self.errors {
            rows.push(("error (sample)", e.clone()));
        }
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from)).expect("samples");
        assert_eq!((p.p50, p.p99, p.max, p.count), (50.0, 99.0, 100.0, 100));
        assert!(Percentiles::of(std::iter::empty()).is_none());
        let p = Percentiles::of([7.0].into_iter()).expect("one");
        assert_eq!((p.p50, p.p99), (7.0, 7.0));
    }
}
