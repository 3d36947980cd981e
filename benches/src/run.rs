//! One load run: optional publisher, the player threads, the per-second lines, the steady
//! window over which the server's CPU and memory are measured, and the final report.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{run_thread, LoadConfig, Shared};
use crate::player::PlayerStats;
use crate::procstat::{listen_counters, rss_kib, threads_cpu, threads_cpu_pct, CpuSample};
use crate::report::{Percentiles, Report, WorkerCpu};

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub load: LoadConfig,
    pub duration: Duration,
    pub publish: Option<PathBuf>,
    pub server_pid: Option<u32>,
    /// Settling time between the last player joining and the start of the steady window (the
    /// fast-start bursts drain, the server's memory stops growing).
    pub warmup: Duration,
    /// After the last player started, how long to wait for all to play before the steady
    /// window starts anyway (with those playing; the rest are reported by phase).
    pub settle_timeout: Duration,
    /// Per-second lines go to stderr instead of stdout (with `--json`).
    pub lines_to_stderr: bool,
}

/// The name stratad gives its worker threads, followed by the worker's number.
const WORKER_THREAD_PREFIX: &str = "strata-w";

/// How long players wait for the publisher to be set up in the same run.
const PUBLISH_LEAD: Duration = Duration::from_secs(1);

pub fn run(cfg: &RunConfig) -> Result<Report, String> {
    // One socket per player, plus the publisher's, the epoll sets and /proc reads.
    crate::limits::raise_nofile(
        cfg.load.players as u64 + 64,
        &format!("{} players", cfg.load.players),
    )?;
    let t_start = Instant::now();
    let deadline = t_start + cfg.duration;
    let publisher_late_us = Arc::new(AtomicU64::new(0));
    let publisher = match &cfg.publish {
        Some(path) => {
            let tags =
                crate::flv::read_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let url = cfg.load.url.clone();
            let late = publisher_late_us.clone();
            let h = std::thread::Builder::new()
                .name("publisher".into())
                .spawn(move || crate::publisher::publish(&url, &tags, deadline, late))
                .map_err(|e| e.to_string())?;
            if cfg.load.players > 0 {
                std::thread::sleep(PUBLISH_LEAD);
            }
            Some(h)
        }
        None => None,
    };
    let pid = cfg.server_pid;
    let rss_before = pid.and_then(rss_kib);
    let listen_before = listen_counters(pid);
    let shared = Shared::new(cfg.load.threads.max(1));
    let t0 = Instant::now();
    let n = cfg.load.players;
    let mut report = Report::new(cfg);
    report.server_rss_before_kib = rss_before;

    let results = std::thread::scope(|s| -> Result<Vec<PlayerStats>, String> {
        let handles: Vec<_> = (0..cfg.load.threads.max(1))
            .filter(|&t| t < n.max(1))
            .map(|t| {
                let shared = &shared;
                let load = &cfg.load;
                s.spawn(move || {
                    if load.rtmfp {
                        crate::rtmfp_load::run_thread(load, t, t0, deadline, shared)
                    } else {
                        run_thread(load, t, t0, deadline, shared)
                    }
                })
            })
            .collect();
        let late = cfg.publish.is_some().then_some(&*publisher_late_us);
        monitor(cfg, &shared, late, t0, deadline, &mut report);
        shared.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::with_capacity(n);
        for h in handles {
            match h.join() {
                Ok(Ok(r)) => all.extend(r.players),
                Ok(Err(e)) => return Err(format!("player thread: {e}")),
                Err(_) => return Err("player thread panicked".into()),
            }
        }
        Ok(all)
    })?;
    report.finish(&results, &shared, Instant::now().min(deadline));
    if cfg.load.rtmfp {
        report.player_socket_drops = Some(shared.sum(|c| &c.socket_drops));
    }
    if let (Some(a), Some(b)) = (listen_before, listen_counters(pid)) {
        report.listen_overflows = Some(b.overflows.saturating_sub(a.overflows));
        report.listen_drops = Some(b.drops.saturating_sub(a.drops));
    }
    if let Some(h) = publisher {
        match h.join() {
            Ok(Ok(p)) => report.publisher = Some(p.into()),
            Ok(Err(e)) => report.publisher_error = Some(e.to_string()),
            Err(_) => report.publisher_error = Some("publisher panicked".into()),
        }
    }
    Ok(report)
}

/// Prints a line a second, and takes the steady-window samples. Each line ends with the
/// worst lateness of the publisher (when this run publishes) and the longest turn of the
/// player threads in that second, so a burst of stalls can be told from a source or a load
/// tool that paused.
fn monitor(
    cfg: &RunConfig,
    shared: &Shared,
    publisher_late_us: Option<&AtomicU64>,
    t0: Instant,
    deadline: Instant,
    report: &mut Report,
) {
    let pid = cfg.server_pid;
    let n = cfg.load.players as u64;
    let mut last = CpuSample::take(pid);
    let mut last_bytes = 0u64;
    let mut steady_from: Option<Instant> = None;
    let mut window_start: Option<(CpuSample, u64)> = None;
    // The server's threads at the start of the steady window, and when they were read.
    let mut threads_start = None;
    let mut tick = 1u64;
    let mut out: Box<dyn Write> = if cfg.lines_to_stderr {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    // The end sample is taken just before the deadline, while every player still reads.
    let end_at = deadline
        .checked_sub(Duration::from_millis(200))
        .unwrap_or(deadline);
    loop {
        let next = (t0 + Duration::from_secs(tick)).min(end_at);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let sample = CpuSample::take(pid);
        let bytes = shared.sum(|c| &c.bytes);
        let secs = sample.at.duration_since(last.at).as_secs_f64().max(1e-3);
        let mbps = (bytes - last_bytes) as f64 * 8.0 / secs / 1e6;
        let started = shared.sum(|c| &c.started);
        let playing = shared.sum(|c| &c.playing);
        let failed = shared.sum(|c| &c.failed);
        let mut line = format!(
            "{:>4.0}s started {started:>5} connected {:>5} playing {playing:>5} video {:>5} failed {failed:>4} {mbps:>9.1} Mbit/s stalls {:>4}",
            sample.at.duration_since(t0).as_secs_f64(),
            shared.sum(|c| &c.connected),
            shared.sum(|c| &c.first_video),
            shared.sum(|c| &c.stalls),
        );
        if let (Some(a), Some(b)) = (last.server, sample.server) {
            let cpu = (b - a) / secs * 100.0;
            line += &format!(" | server {cpu:>5.1}% cpu");
        }
        if let Some(kib) = pid.and_then(rss_kib) {
            line += &format!(" {:.1} MiB", kib as f64 / 1024.0);
        }
        let load_cpu = (sample.load - last.load) / secs * 100.0;
        line += &format!(" | load {load_cpu:>5.1}% cpu");
        if n > 0 {
            let turn_us = shared
                .counters
                .iter()
                .map(|c| c.longest_turn_us.swap(0, Ordering::Relaxed))
                .max()
                .unwrap_or(0);
            line += &format!(" turn {:>4} ms", turn_us / 1000);
            if cfg.load.rtmfp {
                line += &format!(" drops {:>5}", shared.sum(|c| &c.socket_drops));
            }
        }
        if let Some(late) = publisher_late_us {
            line += &format!(
                " | publisher late {:>4} ms",
                late.swap(0, Ordering::Relaxed) / 1000
            );
        }
        if window_start.is_some() {
            line += " [steady]";
        }
        let _ = writeln!(out, "{line}");
        // Everyone has joined and settled (playing or failed), or the stragglers are given
        // up on: the steady window starts after the warm-up.
        let all_started_at = t0 + cfg.load.start_offset(cfg.load.players.saturating_sub(1));
        let given_up = sample.at >= all_started_at + cfg.settle_timeout;
        if steady_from.is_none() && started >= n && (playing + failed >= n || given_up) {
            steady_from = Some(sample.at + cfg.warmup);
            report.all_joined_after_s = Some(sample.at.duration_since(t0).as_secs_f64());
        }
        if window_start.is_none() && steady_from.is_some_and(|s| sample.at >= s) {
            window_start = Some((sample, bytes));
            threads_start = pid.and_then(threads_cpu).map(|t| (Instant::now(), t));
        }
        last = sample;
        last_bytes = bytes;
        tick += 1;
        if sample.at >= end_at {
            break;
        }
    }
    if let Some((start, start_bytes)) = window_start {
        let end = last;
        let secs = end.at.duration_since(start.at).as_secs_f64();
        if secs >= 0.5 {
            report.steady_secs = Some(secs);
            report.delivered_mbps = Some((last_bytes - start_bytes) as f64 * 8.0 / secs / 1e6);
            if let (Some(a), Some(b)) = (start.server, end.server) {
                report.server_cpu_pct = Some((b - a) / secs * 100.0);
            }
            report.load_cpu_pct = Some((end.load - start.load) / secs * 100.0);
            report.server_rss_steady_kib = pid.and_then(rss_kib);
        }
    }
    if let (Some((from, before)), Some(after)) = (threads_start, pid.and_then(threads_cpu)) {
        let secs = from.elapsed().as_secs_f64();
        if secs >= 0.5 {
            report.server_workers_cpu_pct =
                threads_cpu_pct(&before, &after, secs, WORKER_THREAD_PREFIX)
                    .into_iter()
                    .map(|(name, cpu_pct)| WorkerCpu { name, cpu_pct })
                    .collect();
        }
    }
}

impl Report {
    fn finish(&mut self, players: &[PlayerStats], shared: &Shared, end: Instant) {
        let (mut video_secs, mut media_secs) = (0.0, 0.0);
        let (mut video, mut audio) = (0u64, 0u64);
        for p in players {
            if let Some(first) = p.first_video {
                video_secs += end.saturating_duration_since(first).as_secs_f64();
                video += p.video_pictures;
            }
            if let Some(first) = p.first_media {
                media_secs += end.saturating_duration_since(first).as_secs_f64();
                audio += p.media_messages - p.video_pictures;
            }
        }
        if video_secs > 0.0 {
            self.video_fps = Some(video as f64 / video_secs);
        }
        self.video_pictures_min = players
            .iter()
            .filter(|p| p.play_started.is_some())
            .map(|p| p.video_pictures)
            .min();
        if media_secs > 0.0 {
            self.audio_per_s = Some(audio as f64 / media_secs);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        self.connected = players.iter().filter(|p| p.tcp_connected.is_some()).count();
        self.playing = players.iter().filter(|p| p.play_started.is_some()).count();
        self.got_video = players.iter().filter(|p| p.first_video.is_some()).count();
        self.failed = shared.sum(|c| &c.failed) as usize;
        self.stalls = players.iter().map(|p| u64::from(p.stalls)).sum();
        self.players_with_stalls = players.iter().filter(|p| p.stalls > 0).count();
        self.video_stalls = players.iter().map(|p| u64::from(p.video_stalls)).sum();
        self.players_with_video_stalls = players.iter().filter(|p| p.video_stalls > 0).count();
        self.max_video_gap_ms = players
            .iter()
            .map(|p| ms(p.max_video_gap))
            .fold(0.0, f64::max);
        if let Some(m) = self.delivered_mbps {
            self.mbps_per_viewer = Some(m / self.playing.max(1) as f64);
        }
        self.max_gap_ms = players.iter().map(|p| ms(p.max_gap)).fold(0.0, f64::max);
        self.first_video_ms = Percentiles::of(
            players
                .iter()
                .filter_map(|p| p.time_to_first_video().map(ms)),
        );
        self.play_to_first_video_ms = Percentiles::of(
            players
                .iter()
                .filter_map(|p| p.play_to_first_video().map(ms)),
        );
        self.first_media_ms = Percentiles::of(
            players
                .iter()
                .filter_map(|p| p.time_to_first_media().map(ms)),
        );
        if let (Some(a), Some(b)) = (self.server_rss_before_kib, self.server_rss_steady_kib) {
            let viewers = self.playing.max(1) as f64;
            self.kib_per_viewer = Some((b as f64 - a as f64) / viewers);
        }
        if let (Some(mbps), Some(cpu)) = (self.delivered_mbps, self.server_cpu_pct) {
            if cpu > 0.0 {
                self.gbps_per_core = Some(mbps / 1e3 / (cpu / 100.0));
            }
        }
        for p in players.iter().filter(|p| p.phase != "playing") {
            *self
                .not_playing_by_phase
                .entry(p.phase.to_string())
                .or_default() += 1;
        }
        self.errors = shared.errors.lock().map(|v| v.clone()).unwrap_or_default();
    }
}
