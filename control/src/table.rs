//! Human-readable renderings of control replies for `stratactl`'s default output.

use crate::protocol::{ClientInfo, Event, ServerStatus, StreamInfo, UpstreamInfo};
use std::fmt::Write as _;

/// Left-aligned columns separated by two spaces; the header row first.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// 1234567 -> "1.2 MB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Bits per second -> "2.5 Mb/s".
pub fn bitrate(bits_per_s: f64) -> String {
    if bits_per_s >= 1e6 {
        format!("{:.2} Mb/s", bits_per_s / 1e6)
    } else {
        format!("{:.0} kb/s", bits_per_s / 1e3)
    }
}

/// Seconds -> "1d 2h 3m 4s" (largest units only).
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn age(since: f64, now: f64) -> String {
    duration(now - since)
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

pub fn status(s: &ServerStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "stratad {} (protocol {}), pid {}, up {}",
        s.version,
        s.protocol,
        s.pid,
        duration(s.uptime_s)
    );
    let _ = writeln!(
        out,
        "connections {}  streams {}  in {} ({})  out {} ({})  dropped frames {}",
        s.connections,
        s.streams,
        bytes(s.bytes_in),
        bitrate(s.bits_in_per_s),
        bytes(s.bytes_out),
        bitrate(s.bits_out_per_s),
        s.dropped_frames
    );
    let rows: Vec<Vec<String>> = s
        .workers
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.connections.to_string(),
                bytes(w.bytes_in),
                bytes(w.bytes_out),
                w.sends.to_string(),
                // Mean send: what batching buys (one large send per viewer per window).
                w.bytes_out
                    .checked_div(w.sends)
                    .map_or_else(|| "-".into(), bytes),
                format!("{:.0}%", w.load * 100.0),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render(
        &[
            "WORKER",
            "CONNECTIONS",
            "IN",
            "OUT",
            "SENDS",
            "PER SEND",
            "LOAD",
        ],
        &rows,
    ));
    out
}

pub fn streams(streams: &[StreamInfo], now: f64) -> String {
    if streams.is_empty() {
        return "no streams\n".into();
    }
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|s| {
            vec![
                s.app.clone(),
                s.instance.clone(),
                s.name.clone(),
                opt(&s.publisher),
                format!("{}/{}", opt(&s.video_codec), opt(&s.audio_codec)),
                bitrate(s.bitrate_in),
                bitrate(s.bitrate_out),
                s.viewers.to_string(),
                s.gop_frames.to_string(),
                age(s.since, now),
                opt(&s.recording),
            ]
        })
        .collect();
    let mut table = render(
        &[
            "APP",
            "INSTANCE",
            "STREAM",
            "PUBLISHER",
            "CODECS",
            "IN",
            "OUT",
            "VIEWERS",
            "GOP",
            "SINCE",
            "RECORDING",
        ],
        &rows,
    );
    let outputs: Vec<Vec<String>> = streams
        .iter()
        .flat_map(|s| {
            s.multicast.iter().map(move |m| {
                vec![
                    format!("{}/{}/{}", s.app, s.instance, s.name),
                    m.group.clone(),
                    if m.rtp { "rtp" } else { "udp" }.to_string(),
                    m.state.clone(),
                    m.datagrams.to_string(),
                    m.bytes.to_string(),
                    m.dropped_bytes.to_string(),
                    m.failures.to_string(),
                ]
            })
        })
        .collect();
    if !outputs.is_empty() {
        table.push('\n');
        table.push_str(&render(
            &[
                "MULTICAST OF",
                "GROUP",
                "AS",
                "STATE",
                "DATAGRAMS",
                "BYTES",
                "DROPPED",
                "FAILURES",
            ],
            &outputs,
        ));
    }
    table
}

pub fn upstreams(upstreams: &[UpstreamInfo], now: f64) -> String {
    if upstreams.is_empty() {
        return "no upstream links\n".into();
    }
    let rows: Vec<Vec<String>> = upstreams
        .iter()
        .map(|u| {
            vec![
                u.app.clone(),
                // A standing link lists its group's live streams.
                if u.streams.is_empty() {
                    u.stream.clone()
                } else {
                    format!("{} [{}]", u.stream, u.streams.join(" "))
                },
                u.group.clone(),
                format!("{};{}", u.primary, u.secondary),
                u.address.clone(),
                u.state.clone(),
                u.attempts.to_string(),
                if u.active { "*".into() } else { String::new() },
                u.position.map_or("-".into(), |p| p.to_string()),
                u.worker.to_string(),
                age(u.since, now),
            ]
        })
        .collect();
    render(
        &[
            "APP",
            "STREAM",
            "GROUP",
            "PRIMARY;SECONDARY",
            "ADDRESS",
            "STATE",
            "FAILED",
            "ACTIVE",
            "LIST",
            "WORKER",
            "SINCE",
        ],
        &rows,
    )
}

pub fn clients(clients: &[ClientInfo], now: f64) -> String {
    if clients.is_empty() {
        return "no clients\n".into();
    }
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            let mut streams: Vec<String> =
                c.publishing.iter().map(|s| format!("pub:{s}")).collect();
            streams.extend(c.playing.iter().map(|s| format!("play:{s}")));
            vec![
                c.id.to_string(),
                c.addr.clone(),
                c.protocol.clone(),
                opt(&c.app),
                c.worker.to_string(),
                if streams.is_empty() {
                    "-".into()
                } else {
                    streams.join(",")
                },
                bytes(c.bytes_in),
                bytes(c.bytes_out),
                format!("{}ms", c.lag_ms),
                c.rtt_ms.map_or_else(|| "-".into(), |ms| format!("{ms}ms")),
                c.peer_id
                    .as_deref()
                    .map_or_else(|| "-".into(), |id| id.chars().take(16).collect()),
                age(c.since, now),
            ]
        })
        .collect();
    render(
        &[
            "ID", "ADDR", "PROTO", "APP", "WORKER", "STREAMS", "IN", "OUT", "LAG", "RTT", "PEER",
            "SINCE",
        ],
        &rows,
    )
}

/// One line per event: `time event client=ID addr=... app=... stream=... reason=...`.
pub fn event(e: &Event) -> String {
    let mut out = format!(
        "{:.3} {} client={} addr={}",
        e.ts, e.event, e.client, e.addr
    );
    for (k, v) in [
        ("app", &e.app),
        ("stream", &e.stream),
        ("reason", &e.reason),
        ("protocol", &e.protocol),
    ] {
        if let Some(v) = v {
            let _ = write!(out, " {k}={v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let t = render(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
    }

    #[test]
    fn sizes_and_rates_read_naturally() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(bitrate(2_500_000.0), "2.50 Mb/s");
        assert_eq!(bitrate(96_000.0), "96 kb/s");
        assert_eq!(duration(3725.0), "1h 2m");
        assert_eq!(duration(42.0), "42s");
    }
}
