//! `strata-load ceiling` end to end, tiny: 8 sockets for 1.5 s in each mode. Only delivery
//! and the report's own arithmetic are checked; CPU figures on a shared 2-core machine are
//! not something a test can assert.

use std::time::Duration;

use benches::ceiling::{run, CeilingConfig, CeilingReport, Progress};

fn tiny(rate_mbps: f64, interval_ms: u64) -> CeilingConfig {
    CeilingConfig {
        sockets: 8,
        rate_mbps,
        interval: Duration::from_millis(interval_ms),
        write_size: 65536,
        iovecs: 1,
        duration: Duration::from_millis(1500),
        warmup: Duration::from_millis(300),
        // Tests share the machine with whatever else runs: no pinning.
        writer_cpu: None,
        sink_cpu: None,
        progress: Progress::Off,
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

fn check_consistent(r: &CeilingReport) {
    assert!(r.steady_secs > 0.5, "steady window {} s", r.steady_secs);
    assert!(r.bytes_written > 0 && r.bytes_read > 0, "{r:?}");
    assert!(r.writes > 0, "{r:?}");
    let gbps = r.bytes_read as f64 * 8.0 / r.steady_secs / 1e9;
    assert!(close(r.delivered_gbps, gbps, 1e-9), "{r:?}");
    assert!(close(r.writes_per_s, r.writes as f64 / r.steady_secs, 1e-9));
    let mean = r.mean_write_bytes.expect("writes were made");
    assert!(close(mean, r.bytes_written as f64 / r.writes as f64, 1e-9));
    assert!(mean <= r.write_bytes as f64 * 4.0, "{r:?}");
    if let (Some(per_core), Some(cpu)) = (r.gbps_per_writer_core, r.writer_cpu_pct) {
        assert!(
            close(per_core, r.delivered_gbps / (cpu / 100.0), 1e-9),
            "{r:?}"
        );
    }
    if let (Some(us), Some(cpu)) = (r.writer_us_per_write, r.writer_cpu_pct) {
        let expect = cpu / 100.0 * r.steady_secs / r.writes as f64 * 1e6;
        assert!(close(us, expect, 1e-9), "{r:?}");
    }
    // The JSON round-trips with the same figures.
    let back: CeilingReport = serde_json::from_str(&r.to_json()).expect("json");
    assert_eq!(back.bytes_read, r.bytes_read);
    assert!(!r.to_table().is_empty());
}

#[test]
fn paced_delivers_the_rate() {
    // 8 Mbit/s per socket in 20 ms turns: 20,000 B per write, 64 Mbit/s in all; a 1 s
    // window holds ~50 turns, so the window's edges are worth ~2 %.
    // In 7 uneven pieces, so the writev path is the one checked here.
    let cfg = CeilingConfig {
        iovecs: 7,
        ..tiny(8.0, 20)
    };
    let r = run(&cfg).expect("ceiling run");
    assert_eq!(r.iovecs, 7);
    check_consistent(&r);
    assert_eq!(r.mode, "paced");
    assert_eq!(r.write_bytes, 20_000);
    let expected = r.expected_gbps.expect("paced has an expected rate");
    assert!(close(expected, 0.064, 1e-9));
    assert!(
        close(r.delivered_gbps, expected, 0.4),
        "delivered {} Gbit/s, expected {expected}",
        r.delivered_gbps
    );
    assert!(
        close(r.bytes_written as f64, r.bytes_read as f64, 0.4),
        "{r:?}"
    );
}

#[test]
fn unpaced_writes_as_fast_as_it_can() {
    let r = run(&tiny(0.0, 100)).expect("ceiling run");
    check_consistent(&r);
    assert_eq!(r.mode, "unpaced");
    assert_eq!(r.expected_gbps, None);
    // Even a debug build on a busy machine moves far more than the paced test's 64 Mbit/s.
    assert!(r.delivered_gbps > 0.1, "{r:?}");
    assert!(r.mean_write_bytes.is_some_and(|m| m <= 65536.0));
}
