//! Multicast outputs against the UDP floor inside one stratad run (issue 14, many streams
//! each to one group). Two separate runs, one with outputs and one without, differ by far
//! more than the outputs cost when the machine is shared (the ingest of N publishers moves
//! by a percent of a core from one run to the next); here the same stratad, with the same
//! publishers, is measured in windows that alternate between:
//!
//! - `on`: every stream has its output (added through the control socket),
//! - `off`: no output (removed again): the streams' ingest alone,
//! - `floor`: no output, and a thread of this tool pinned to stratad's core sends the same
//!   datagrams with the same batching ([`udp_ceiling`]: one GSO `sendmsg` per output every
//!   150 ms, 1316-byte datagrams).
//!
//! The figure is stratad's worker thread's time on a CPU (the scheduler's nanosecond count,
//! /proc/PID/task/TID/schedstat), not its process's: the control thread's handling of the
//! toggles stays out. Each toggle is followed by a settling time outside the windows (a
//! joining output muxes the GOP cache once). A round is one window of each state, in the
//! order off, on, floor, then floor, on, off in the next round, so a drift of the load
//! weighs on both sides alike; per round, output cost = on − off and ratio = cost / floor.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::procstat::task_run_seconds;
use crate::udp_ceiling::{self, UdpCeilingConfig};

#[derive(Debug, Clone)]
pub struct MulticastAbConfig {
    /// stratad's control socket.
    pub control: PathBuf,
    pub server_pid: u32,
    /// The worker thread measured (`strata-w0`: the benchmark runs one worker).
    pub worker: String,
    /// Streams live/bench0 .. live/bench{N-1}, stream i to group first_group + i.
    pub streams: usize,
    pub first_group: Ipv4Addr,
    pub port: u16,
    pub rtp: bool,
    pub rounds: usize,
    pub window: Duration,
    pub settle: Duration,
    /// The core the floor's sender is pinned to: stratad's.
    pub floor_cpu: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Off,
    On,
    Floor,
}

/// One round's windows, in % of one core.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub load: f64,
    /// stratad's worker: outputs, none, none (while the floor ran).
    pub on: f64,
    pub off: f64,
    pub off_during_floor: f64,
    /// The floor's sender thread.
    pub floor: f64,
    /// on − off.
    pub cost: f64,
    /// cost / floor.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MulticastAbReport {
    pub streams: usize,
    pub window_secs: f64,
    pub rounds: Vec<Round>,
    pub median_on: f64,
    pub median_off: f64,
    pub median_cost: f64,
    pub median_floor: f64,
    pub median_ratio: f64,
    pub min_ratio: f64,
    pub max_ratio: f64,
    /// Per output and per second of stream: median cost and floor in µs of CPU.
    pub cost_us_per_output_second: f64,
    pub floor_us_per_output_second: f64,
}

impl MulticastAbReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "multicast a/b: {} streams each to a group, {:.0} s windows, worker CPU % of a core\n\
             round  load   off     on      cost    floor   ratio\n",
            self.streams, self.window_secs
        );
        for (i, r) in self.rounds.iter().enumerate() {
            s.push_str(&format!(
                "{:>5}  {:>4.1}  {:>6.3}  {:>6.3}  {:>6.3}  {:>6.3}  {:>5.2}x\n",
                i + 1,
                r.load,
                r.off,
                r.on,
                r.cost,
                r.floor,
                r.ratio
            ));
        }
        s.push_str(&format!(
            "median: off {:.3}, on {:.3}, cost {:.3}, floor {:.3} % of a core; ratio {:.2}x \
             (rounds {:.2}-{:.2}x); per output per second of stream: {:.1} us against {:.1} us\n",
            self.median_off,
            self.median_on,
            self.median_cost,
            self.median_floor,
            self.median_ratio,
            self.min_ratio,
            self.max_ratio,
            self.cost_us_per_output_second,
            self.floor_us_per_output_second,
        ));
        s
    }
}

/// stratad's control socket, one JSON request per line.
struct Control {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Control {
    fn connect(path: &PathBuf) -> Result<Self, String> {
        let writer = UnixStream::connect(path)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        let reader = BufReader::new(writer.try_clone().map_err(|e| e.to_string())?);
        Ok(Control {
            writer,
            reader,
            next_id: 1,
        })
    }

    /// Sends every call at once and waits for all the answers: N adds cost one round trip
    /// through the control thread, not N.
    fn call_all(&mut self, calls: &[serde_json::Value]) -> Result<(), String> {
        let first = self.next_id;
        let mut out = String::new();
        for params in calls {
            let line = serde_json::json!({
                "v": 1, "id": self.next_id, "method": "multicast", "params": params,
            });
            out.push_str(&line.to_string());
            out.push('\n');
            self.next_id += 1;
        }
        self.writer
            .write_all(out.as_bytes())
            .map_err(|e| format!("control socket: {e}"))?;
        let mut left = calls.len();
        let mut line = String::new();
        while left > 0 {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("control socket: {e}"))?;
            if n == 0 {
                return Err("stratad closed the control socket".into());
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("control socket: {e}"))?;
            let Some(id) = v.get("id").and_then(|i| i.as_u64()) else {
                continue; // an event line
            };
            if id < first || id >= self.next_id {
                continue;
            }
            if let Some(e) = v.get("error") {
                return Err(format!("stratad refused a multicast call: {e}"));
            }
            left -= 1;
        }
        Ok(())
    }
}

fn group(cfg: &MulticastAbConfig, i: usize) -> String {
    let addr = Ipv4Addr::from(u32::from(cfg.first_group).wrapping_add(i as u32));
    format!("{addr}:{}", cfg.port)
}

fn set_outputs(control: &mut Control, cfg: &MulticastAbConfig, on: bool) -> Result<(), String> {
    let calls: Vec<serde_json::Value> = (0..cfg.streams)
        .map(|i| {
            let stream = format!("live/bench{i}");
            if on {
                serde_json::json!({"op": "add", "output": {
                    "stream": stream, "group": group(cfg, i), "rtp": cfg.rtp, "ttl": 1,
                }})
            } else {
                serde_json::json!({"op": "remove", "stream": stream, "group": group(cfg, i)})
            }
        })
        .collect();
    control.call_all(&calls)
}

/// The tid of `name` among `pid`'s threads.
fn find_thread(pid: u32, name: &str) -> Result<u32, String> {
    crate::procstat::threads_cpu(pid)
        .ok_or_else(|| format!("process {pid} is gone"))?
        .into_iter()
        .find(|t| t.name == name)
        .map(|t| t.tid)
        .ok_or_else(|| format!("process {pid} has no thread {name}"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

pub fn run(cfg: &MulticastAbConfig) -> Result<MulticastAbReport, String> {
    if cfg.streams == 0 || cfg.rounds == 0 {
        return Err("--streams and --rounds must be positive".into());
    }
    let tid = find_thread(cfg.server_pid, &cfg.worker)?;
    let worker_secs = || {
        task_run_seconds(cfg.server_pid, tid)
            .ok_or_else(|| format!("cannot read {}'s CPU time", cfg.worker))
    };
    let mut control = Control::connect(&cfg.control)?;
    let mut outputs_on = false;
    let mut rounds = Vec::new();
    for round in 0..cfg.rounds {
        let mut order = [State::Off, State::On, State::Floor];
        if round % 2 == 1 {
            order.reverse();
        }
        let (mut on, mut off, mut off_floor, mut floor) = (0.0, 0.0, 0.0, 0.0);
        for state in order {
            let want = state == State::On;
            if want != outputs_on {
                set_outputs(&mut control, cfg, want)?;
                outputs_on = want;
            }
            // The floor's sender starts with the settling time as its warm-up, so that its
            // steady window and ours are the same seconds.
            let sender = (state == State::Floor).then(|| {
                let ceiling = UdpCeilingConfig {
                    outputs: cfg.streams,
                    first_group: cfg.first_group,
                    port: cfg.port,
                    rtp: cfg.rtp,
                    duration: cfg.settle + cfg.window,
                    warmup: cfg.settle,
                    cpu: Some(cfg.floor_cpu),
                    ..UdpCeilingConfig::default()
                };
                std::thread::spawn(move || udp_ceiling::run(&ceiling))
            });
            std::thread::sleep(cfg.settle);
            let (t0, c0) = (Instant::now(), worker_secs()?);
            std::thread::sleep(cfg.window);
            let pct = (worker_secs()? - c0) / t0.elapsed().as_secs_f64() * 100.0;
            match state {
                State::On => on = pct,
                State::Off => off = pct,
                State::Floor => off_floor = pct,
            }
            if let Some(sender) = sender {
                let report = sender
                    .join()
                    .map_err(|_| "the floor's sender panicked".to_string())??;
                if report.send_errors > 0 {
                    return Err(format!("the floor's sender: {} errors", report.send_errors));
                }
                floor = report.cpu_pct;
            }
        }
        let cost = on - off;
        let r = Round {
            load: load_average(),
            on,
            off,
            off_during_floor: off_floor,
            floor,
            cost,
            ratio: cost / floor,
        };
        eprintln!(
            "round {}: off {:.3} on {:.3} cost {:.3} floor {:.3} ratio {:.2}x (load {:.1})",
            round + 1,
            r.off,
            r.on,
            r.cost,
            r.floor,
            r.ratio,
            r.load
        );
        rounds.push(r);
    }
    if outputs_on {
        set_outputs(&mut control, cfg, false)?;
    }
    let pick = |f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let ratios = pick(|r| r.ratio);
    let median_cost = median(&mut pick(|r| r.cost));
    let median_floor = median(&mut pick(|r| r.floor));
    // % of a core is 10,000 µs per second; per output, one output per second of stream.
    let per_output = |pct: f64| pct * 10_000.0 / cfg.streams as f64;
    Ok(MulticastAbReport {
        streams: cfg.streams,
        window_secs: cfg.window.as_secs_f64(),
        median_on: median(&mut pick(|r| r.on)),
        median_off: median(&mut pick(|r| r.off)),
        median_cost,
        median_floor,
        median_ratio: median(&mut ratios.clone()),
        min_ratio: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        max_ratio: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        cost_us_per_output_second: per_output(median_cost),
        floor_us_per_output_second: per_output(median_floor),
        rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
