//! Issue 9's benchmark (what it must show, 7), not a timed test: run it by hand with a
//! release stratad and put the figures in BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --bin stratad
//! STRATAD_BIN=$PWD/target/release/stratad cargo run -p benches --example tiers -- failover 20
//! STRATAD_BIN=$PWD/target/release/stratad cargo run -p benches --example tiers -- failover 20 40
//! STRATAD_BIN=$PWD/target/release/stratad cargo run -p benches --example tiers -- failover 20 40 0
//! STRATAD_BIN=$PWD/target/release/stratad cargo run -p benches --example tiers -- origin-cost 50
//! ```
//!
//! `failover N`: two origins (ffmpeg publishes the sample to both), one edge with a group
//! for each; N times `kill -9` of the origin the edge streams from (and its publisher),
//! then both come back. A viewer of ours on the edge records arrival times; per kill two
//! figures: the switch (from the last picture of the old source to the new source's codec
//! header, what the failover itself costs) and the largest gap between pictures in the 3 s
//! after the kill (the viewer's experience, the source's own jitter included). Once with
//! the default rule, once with `hot_standby = true`; p50 and max of each. A second number
//! puts that many ms of latency each way between the edge and each origin (a delaying
//! relay, `e2e::delay_proxy`; this kernel has no netem); a third sets the edge's
//! `send_batch_ms` (0: every message sent at once, so the viewer's gaps are not rounded up
//! to the default 150 ms bursts); a fourth, 2, adds a second stream published to the edge
//! itself and watched there (see `jitter`). `TIERS_MODES=hot` runs hot standby only. Per
//! kill a third figure, the largest gap "across the
//! switch" (from the old source's last picture to 500 ms after the new source's header),
//! leaves out the source's jitter later in the 3 s. With `TIERS_TRACE=1` in the
//! environment each kill also prints what the viewer received around it, one line per
//! burst (arrival after the kill, messages, timestamps). `jitter N [latency_ms
//! [send_batch_ms [streams]]]`: the same edge and viewer with no kill, the floor under the
//! gaps; with `streams` 2 a second stream, published to the edge itself (application
//! `local`), is watched there meanwhile, so that the edge's send batching no longer keeps
//! to the pulled stream's rhythm alone.
//!
//! `origin-cost N`: one origin with one publisher; its CPU over 15 s with N direct viewers,
//! then with N edges pulling the stream (one edge stratad with N edge applications, one
//! viewer each: N server-to-server links at the origin, as N edge servers would make).

use e2e::delay_proxy::DelayProxy;
use e2e::publisher::publish_sample;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{free_addr_on, Server, ServerOptions};
use e2e::tiers::{
    failover_gap, gap_across_switch, host, origin_at, switch_gap, tier_with, watch, watch_name,
    Seen,
};
use e2e::tools::ChildGuard;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("failover") => {
            let latency = Duration::from_millis(n(2, 0) as u64);
            let batch = args.get(3).and_then(|s| s.parse().ok());
            let local = n(4, 1) > 1;
            let only_hot = std::env::var("TIERS_MODES").is_ok_and(|m| m == "hot");
            for hot in [false, true] {
                if hot || !only_hot {
                    failover(n(1, 20), hot, latency, batch, local);
                }
            }
        }
        Some("origin-cost") => origin_cost(n(1, 50)),
        Some("jitter") => jitter(
            n(1, 20),
            Duration::from_millis(n(2, 0) as u64),
            args.get(3).and_then(|s| s.parse().ok()),
            n(4, 1),
        ),
        _ => eprintln!(
            "usage: tiers failover [kills [latency_ms [send_batch_ms [streams]]]] | tiers origin-cost \
             [viewers] | tiers jitter [windows [latency_ms [send_batch_ms [streams]]]]"
        ),
    }
}

/// Waits (bounded) until `needle` appears in `server`'s log more than `before` times.
fn wait_count(server: &Server, needle: &str, before: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if server.log().matches(needle).count() > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// With a latency, each origin is reached through a relay that delays everything (its
/// death too) by that much each way, as between sites; the relays outlive the origins they
/// stand for, so a restarted origin is reached through the same one. The addresses the
/// edge's groups name, and the relays (kept while they are used).
fn links(addrs: [SocketAddr; 2], latency: Duration) -> ([SocketAddr; 2], Vec<DelayProxy>) {
    if latency.is_zero() {
        return (addrs, Vec::new());
    }
    let proxies = vec![
        DelayProxy::start(host(6), addrs[0], latency),
        DelayProxy::start(host(7), addrs[1], latency),
    ];
    ([proxies[0].addr(), proxies[1].addr()], proxies)
}

/// The edge's extra configuration: hot standby, and the viewers' send batching when given
/// (`[live] send_batch_ms`; the default, 150 ms, sends viewers' media in bursts, which
/// the gaps measured at the viewer then include).
fn edge_extra(hot: bool, batch: Option<u32>) -> String {
    let mut extra = String::new();
    if hot {
        extra.push_str("hot_standby = true\n");
    }
    if let Some(ms) = batch {
        extra.push_str(&format!("[live]\nsend_batch_ms = {ms}\n"));
    }
    extra
}

type Viewers = Vec<JoinHandle<Result<Seen, String>>>;

/// The edge's configuration beyond its tier application: hot standby, batching, and with
/// `local` a plain application a second stream is published to.
fn edge_config(hot: bool, batch: Option<u32>, local: bool) -> String {
    let mut extra = edge_extra(hot, batch);
    if local {
        extra.push_str("[[application]]\nname = \"local\"\n");
    }
    extra
}

/// With `local`: a second stream published to the edge itself and watched there by three
/// viewers until `until` (the edge has two workers: both likely carry it). Its frames
/// arrive one by one, on their own rhythm, and arm the edge's send batching as often as
/// the pulled stream's do, as other streams would on a busy edge.
fn local_stream(edge: &Server, local: bool, until: Instant) -> Option<(ChildGuard, Viewers)> {
    if !local {
        return None;
    }
    let publisher = publish_sample(&edge.url("local/cam"));
    std::thread::sleep(Duration::from_millis(500));
    let viewers = (0..3)
        .map(|_| watch_name(edge.addr(), "local", "cam", until))
        .collect();
    Some((publisher, viewers))
}

fn failover(kills: usize, hot: bool, latency: Duration, batch: Option<u32>, local: bool) {
    let dir = ScratchDir::new("bench-tiers-failover");
    let addrs: [SocketAddr; 2] = [free_addr_on(host(2)), free_addr_on(host(3))];
    let (via, _proxies) = links(addrs, latency);
    let start = |a: SocketAddr| {
        let o = origin_at(a);
        let p = publish_sample(&format!("rtmp://{a}/lsc_origin/cam"));
        (o, p)
    };
    let mut origins: [Option<(Server, ChildGuard)>; 2] = addrs.map(|a| Some(start(a)));
    let edge = tier_with(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[
            ("server1", via[0], via[0], "lsc_origin"),
            ("server2", via[1], via[1], "lsc_origin"),
        ],
        1000,
        &edge_config(hot, batch, local),
    );
    let _local = local_stream(
        &edge,
        local,
        Instant::now() + Duration::from_secs(20 * kills as u64 + 60),
    );
    // A viewer that stays all along keeps the pull up between the measuring ones.
    let keep = watch(
        edge.addr(),
        "lsc_edge",
        Instant::now() + Duration::from_secs(20 * kills as u64 + 60),
    );
    let rejoined = if hot {
        "answered; hot standby"
    } else {
        "answered; parked"
    };
    assert!(wait_count(
        &edge,
        "upstream plays",
        0,
        Duration::from_secs(15)
    ));
    assert!(wait_count(&edge, rejoined, 0, Duration::from_secs(15)));
    let (mut switches, mut gaps, mut across) = (Vec::new(), Vec::new(), Vec::new());
    let trace = std::env::var_os("TIERS_TRACE").is_some();
    for k in 0..kills {
        let log = edge.log();
        // The group streaming now: the last "plays"/"switched" line names it.
        let current = log
            .lines()
            .rev()
            .find(|l| l.contains("upstream plays") || l.contains("stream switched upstream"))
            .map_or(0, |l| usize::from(!l.contains("group=server1")));
        let rejoins = log.matches(rejoined).count();
        let viewer = watch(
            edge.addr(),
            "lsc_edge",
            Instant::now() + Duration::from_secs(5),
        );
        std::thread::sleep(Duration::from_millis(1500));
        let killed = Instant::now();
        if let Some((mut o, mut p)) = origins[current].take() {
            o.signal(libc::SIGKILL);
            let _ = o.wait_exit(Duration::from_secs(5));
            p.kill();
        }
        let seen: Seen = match viewer.join() {
            Ok(Ok(seen)) => seen,
            Ok(Err(e)) => panic!("kill {k}: {e}"),
            Err(_) => panic!("kill {k}: viewer thread panicked"),
        };
        let switch = switch_gap(&seen, killed);
        let gap = failover_gap(&seen, killed);
        let at_switch = gap_across_switch(&seen, killed, Duration::from_millis(500));
        println!(
            "{} kill {k}: group server{} killed; switch {}; largest gap across the switch {}; \
             largest gap in 3 s {}",
            if hot { "hot standby" } else { "default" },
            current + 1,
            switch.map_or("none".into(), ms),
            at_switch.map_or("none".into(), ms),
            ms(gap)
        );
        if trace {
            print_bursts(&seen, killed);
        }
        if let Some(s) = switch {
            switches.push(s);
        }
        if let Some(g) = at_switch {
            across.push(g);
        }
        gaps.push(gap);
        origins[current] = Some(start(addrs[current]));
        if !wait_count(&edge, rejoined, rejoins, Duration::from_secs(15)) {
            println!("kill {k}: the origin did not rejoin in 15 s");
        }
    }
    drop(keep);
    switches.sort();
    gaps.sort();
    across.sort();
    println!(
        "== {}, links {} each way, send_batch_ms {}{}: {} kills; switch p50 {} max {} ({} seen); \
         across the switch p50 {} max {}; largest gap p50 {} max {}",
        if hot { "hot standby" } else { "default rule" },
        ms(latency),
        batch.map_or("default".into(), |b| b.to_string()),
        if local { ", a local stream too" } else { "" },
        kills,
        ms(percentile(&switches, 0.5)),
        ms(switches.last().copied().unwrap_or_default()),
        switches.len(),
        ms(percentile(&across, 0.5)),
        ms(across.last().copied().unwrap_or_default()),
        ms(percentile(&gaps, 0.5)),
        ms(gaps.last().copied().unwrap_or_default()),
    );
}

/// The floor under the failover figures: the same edge and viewer with no kill, the
/// largest gap between pictures in each of N windows of 3 s (the source's own jitter).
fn jitter(windows: usize, latency: Duration, batch: Option<u32>, streams: usize) {
    let dir = ScratchDir::new("bench-tiers-jitter");
    let addrs: [SocketAddr; 2] = [free_addr_on(host(2)), free_addr_on(host(3))];
    let _origins = addrs.map(|a| {
        let o = origin_at(a);
        let p = publish_sample(&format!("rtmp://{a}/lsc_origin/cam"));
        (o, p)
    });

    let (via, _proxies) = links(addrs, latency);
    let edge = tier_with(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[
            ("server1", via[0], via[0], "lsc_origin"),
            ("server2", via[1], via[1], "lsc_origin"),
        ],
        1000,
        &edge_config(false, batch, streams > 1),
    );
    let until = Instant::now() + Duration::from_secs(3 * windows as u64 + 4);
    let _local = local_stream(&edge, streams > 1, until);
    let viewer = watch(edge.addr(), "lsc_edge", until);
    let seen = match viewer.join() {
        Ok(Ok(seen)) => seen,
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("viewer thread panicked"),
    };
    let Some(first) = seen.first().map(|s| s.0) else {
        panic!("the viewer received nothing");
    };
    let mut gaps: Vec<Duration> = (0..windows)
        .map(|i| failover_gap(&seen, first + Duration::from_secs(1 + 3 * i as u64)))
        .collect();
    gaps.sort();
    println!(
        "== no kill, links {} each way, send_batch_ms {}, {streams} stream(s) on the edge: \
         largest gap between pictures per 3 s window over {windows}: p50 {} max {}",
        ms(latency),
        batch.map_or("default".into(), |b| b.to_string()),
        ms(percentile(&gaps, 0.5)),
        ms(gaps.last().copied().unwrap_or_default())
    );
}

/// What the viewer received from 600 ms before `killed` to 1.2 s after, one line per burst
/// (messages arriving within 2 ms of each other): arrival after the kill, how many, the
/// timestamps of the first and last, how many were pictures.
fn print_bursts(seen: &Seen, killed: Instant) {
    let near: Vec<_> = seen
        .iter()
        .filter(|s| {
            s.0 + Duration::from_millis(600) > killed && s.0 < killed + Duration::from_millis(1200)
        })
        .collect();
    let at = |t: Instant| {
        if t >= killed {
            t.duration_since(killed).as_secs_f64() * 1e3
        } else {
            -killed.duration_since(t).as_secs_f64() * 1e3
        }
    };
    let mut i = 0;
    while i < near.len() {
        let mut j = i + 1;
        while j < near.len() && near[j].0.duration_since(near[j - 1].0) < Duration::from_millis(2) {
            j += 1;
        }
        let burst = &near[i..j];
        println!(
            "    {:8.1} ms: {:3} messages, ts {}..{}, {} pictures",
            at(burst[0].0),
            burst.len(),
            burst[0].2,
            burst[burst.len() - 1].2,
            burst.iter().filter(|s| s.3).count()
        );
        i = j;
    }
}

/// N viewers of ours playing `app`/cam on `addr` for `secs`.
fn viewers(
    addr: SocketAddr,
    apps: &[&'static str],
    secs: u64,
) -> Vec<JoinHandle<Result<Seen, String>>> {
    let until = Instant::now() + Duration::from_secs(secs);
    apps.iter().map(|app| watch(addr, app, until)).collect()
}

/// The origin's CPU seconds per second over `window`, after `settle` (its threads' time
/// on a CPU in ns, `procstat::run_seconds`: /proc's 10 ms ticks are too coarse here).
fn origin_cpu(origin: &Server, settle: Duration, window: Duration) -> f64 {
    std::thread::sleep(settle);
    let a = benches::procstat::run_seconds(origin.pid()).unwrap_or_default();
    std::thread::sleep(window);
    let b = benches::procstat::run_seconds(origin.pid()).unwrap_or_default();
    (b - a) / window.as_secs_f64()
}

fn origin_cost(n: usize) {
    let dir = ScratchDir::new("bench-tiers-cost");
    let origin = origin_at(free_addr_on(host(2)));
    let _publisher = publish_sample(&origin.url("lsc_origin/cam"));
    std::thread::sleep(Duration::from_secs(2));
    let (settle, window) = (Duration::from_secs(3), Duration::from_secs(15));
    let secs = (settle + window).as_secs() + 2;

    let idle = origin_cpu(&origin, Duration::ZERO, Duration::from_secs(5));
    println!(
        "origin with its publisher only: {:.3} % of a core",
        idle * 100.0
    );

    let apps: Vec<&'static str> = vec!["lsc_origin"; n];
    let direct = viewers(origin.addr(), &apps, secs);
    let cpu_direct = origin_cpu(&origin, settle, window);
    let ok = direct
        .into_iter()
        .map(JoinHandle::join)
        .filter(|v| matches!(v, Ok(Ok(s)) if s.len() > 100))
        .count();
    println!(
        "{n} direct viewers ({ok} received): origin {:.3} % of a core",
        cpu_direct * 100.0
    );

    // N edges: one stratad with N edge applications, each pulling from the origin.
    let host_ini = dir.join("host.ini");
    std::fs::write(
        &host_ini,
        format!("server1 {0};{0} lsc_origin\n", origin.addr()),
    )
    .expect("host.ini");
    let names: Vec<&'static str> = (0..n)
        .map(|i| &*Box::leak(format!("edge{i}").into_boxed_str()))
        .collect();
    let config: String = names
        .iter()
        .map(|name| {
            format!(
                "[[application]]\nname = \"{name}\"\nrole = \"edge\"\nhost_ini = {:?}\n",
                host_ini.display().to_string()
            )
        })
        .collect();
    let edges = Server::start_with(ServerOptions {
        config: Some(config),
        host: Some(host(5)),
        ..ServerOptions::default()
    });
    let through_edges = viewers(edges.addr(), &names, secs);
    let cpu_edges = origin_cpu(&origin, settle, window);
    let ok = through_edges
        .into_iter()
        .map(JoinHandle::join)
        .filter(|v| matches!(v, Ok(Ok(s)) if s.len() > 100))
        .count();
    let links = origin
        .log()
        .matches("play started")
        .count()
        .saturating_sub(n);
    println!(
        "{n} edges pulling ({ok} viewers received, {links} plays at the origin): origin {:.3} % \
         of a core",
        cpu_edges * 100.0
    );
    println!(
        "== per direct viewer {:.4} %, per edge {:.4} % of a core (publisher only: {:.3} %); \
         edge / viewer {:.2}",
        (cpu_direct - idle) * 100.0 / n as f64,
        (cpu_edges - idle) * 100.0 / n as f64,
        idle * 100.0,
        (cpu_edges - idle) / (cpu_direct - idle)
    );
}
